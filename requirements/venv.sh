#!/bin/sh
# Makes VENV with Python VERSION, unless it already runs that version.
#
#   sh requirements/venv.sh VERSION VENV [PYTHON]
#
# VERSION is the Python of the functions' Lambda runtime (infra/asset.py): the
# tests must run on the version that ships, and .venv's Python compiles the
# asset's .pyc files. PYTHON, when given, is the interpreter to use; otherwise
# python<VERSION> on the PATH, then pyenv's newest <VERSION>.x. Each is run,
# not just looked up: pyenv puts a python3.13 shim on the PATH that fails
# unless a 3.13 is selected. A VENV of another version, or whose Python no
# longer runs (its interpreter was removed), is deleted and made again.
set -eu

version=$1
venv=$2
chosen=${3:-}

version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}

current=$(version_of "$venv/bin/python")
if [ "$current" = "$version" ]; then
    exit 0
fi
if [ -e "$venv" ]; then
    echo "$venv has Python ${current:-that does not run}, not $version: making it again" >&2
    rm -rf "$venv"
fi

if [ -n "$chosen" ]; then
    set -- "$chosen"
else
    set -- "python$version"
    if command -v pyenv >/dev/null 2>&1 && prefix=$(pyenv prefix "$version" 2>/dev/null); then
        set -- "$@" "$prefix/bin/python$version"
    fi
fi
for python in "$@"; do
    if [ "$(version_of "$python")" = "$version" ]; then
        echo "$python -m venv $venv"
        # A half-made venv would pass the version check above next time.
        "$python" -m venv "$venv" || { rm -rf "$venv"; exit 1; }
        exit 0
    fi
done

if [ -n "$chosen" ]; then
    found=$(version_of "$chosen")
    echo "PYTHON=$chosen is ${found:+Python }${found:-not a Python that runs}, not $version." >&2
else
    echo "No Python $version found: neither python$version on the PATH nor a $version in pyenv." >&2
fi
cat >&2 <<EOF
.venv needs Python $version: the functions run on Lambda's python$version, and
the tests and the Lambda asset's build run on the same version. Install it,
then run make again:
    pyenv install $version              # with pyenv: make finds it there, no PATH change
    apt-get install python$version python$version-venv   # Debian 13, or an Ubuntu that packages it
    brew install python@$version        # macOS
or name an interpreter: make PYTHON=/path/to/python$version
EOF
exit 1
