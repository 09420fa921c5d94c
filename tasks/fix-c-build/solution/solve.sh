#!/bin/bash
set -euo pipefail
cd /app/statlib
# recipes must be indented with tabs
sed -i 's/^    /\t/' Makefile
# every source file must be compiled and libm linked for sqrt()
sed -i 's|^OBJS = .*|OBJS = obj/main.o obj/stats.o obj/util.o|' Makefile
sed -i 's|-o \$@ \$(OBJS)$|-o $@ $(OBJS) -lm|' Makefile
# stats.h is included twice via util.h: give it an include guard
{ echo '#ifndef STATS_H'; echo '#define STATS_H'; cat include/stats.h; echo '#endif'; } > /tmp/stats.h
mv /tmp/stats.h include/stats.h
make clean && make
