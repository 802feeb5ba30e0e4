#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (its default image:
# Ubuntu 22.04 with apt's python3, 3.10). It makes a virtual environment with the CPU build of torch
# and torchvision (not the multi-GB CUDA build), the course package from its wheel and what grading
# needs. Everything is installed here: run_autograder downloads nothing.
#
# For a rehearsal outside Gradescope (tests/test_gradescope.py): DLCOURSE_VENV (where the
# environment goes, default /opt/dlcourse), DLCOURSE_SKIP_APT=1 (python3 is there already),
# DLCOURSE_TORCH_INDEX (the index torch comes from, default PyTorch's CPU index).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DLCOURSE_VENV:-/opt/dlcourse}"
torch_index="${DLCOURSE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
wheels=("$here"/dlcourse-*.whl)

if [ -z "${DLCOURSE_SKIP_APT:-}" ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-pip
fi

python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --no-cache-dir --disable-pip-version-check)
# torch first, from the CPU index, within the course's ranges (torch-requirements.txt)
"${pip[@]}" --index-url "$torch_index" -r "$here/torch-requirements.txt"
# then the course package and the grading libraries (the torch just installed satisfies the wheel)
"${pip[@]}" "${wheels[0]}" -r "$here/requirements.txt"
# the bundle reads, the libraries import, their caches are built now rather than while a student waits
"$venv/bin/python" -m dlcourse.instructor.gradescope.run --check "$here"
