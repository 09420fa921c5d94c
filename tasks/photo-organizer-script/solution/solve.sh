#!/bin/bash
set -euo pipefail
cat > /app/organize.sh <<'SH'
#!/bin/bash
dir=${1:-}
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    echo "usage: organize.sh DIR" >&2
    exit 2
fi
moved=0 unsorted=0
while IFS= read -r -d '' path; do
    name=${path##*/}
    if [[ $name =~ ^IMG_([0-9]{4})([0-9]{2})([0-9]{2})_([0-9]{6})\.([jJ][pP][eE]?[gG])$ ]] &&
        date -d "${BASH_REMATCH[1]}-${BASH_REMATCH[2]}-${BASH_REMATCH[3]}" >/dev/null 2>&1 &&
        [ "$(date -d "${BASH_REMATCH[1]}-${BASH_REMATCH[2]}-${BASH_REMATCH[3]}" +%Y%m%d)" = \
          "${BASH_REMATCH[1]}${BASH_REMATCH[2]}${BASH_REMATCH[3]}" ]; then
        y=${BASH_REMATCH[1]} m=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]} t=${BASH_REMATCH[4]}
        mkdir -p "$dir/$y/$m"
        target="$dir/$y/$m/$y-$m-${d}_$t.jpg"
        i=1
        while [ -e "$target" ]; do target="$dir/$y/$m/$y-$m-${d}_${t}_$i.jpg"; i=$((i + 1)); done
        mv -- "$path" "$target"
        moved=$((moved + 1))
    else
        mkdir -p "$dir/unsorted"
        mv -- "$path" "$dir/unsorted/$name"
        unsorted=$((unsorted + 1))
    fi
done < <(find "$dir" -mindepth 1 -maxdepth 1 -type f -print0 | LC_ALL=C sort -z)
echo "moved=$moved unsorted=$unsorted"
SH
chmod +x /app/organize.sh
