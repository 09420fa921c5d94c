#!/bin/bash
# Verifier entry point: stdlib-only checks; writes /logs/verifier/{reward.txt,ctrf.json}.
mkdir -p /logs/verifier
cd /tests && python3 /tests/check.py
