# Sourced by the GPU scripts: install what this machine lacks from the kit's wheels (no index, no network)
# into a scratch folder put on PYTHONPATH with the checkout, so vqcodec runs from the repository as it is.
#
#   kit_packages KIT package[:module] ...
kit_packages() {
  local kit=$1 site entry package module
  shift
  site=$(mktemp -d)
  for entry in "$@"; do
    package=${entry%%:*} module=${entry#*:}
    if ! python3 -c "import $module" 2> /dev/null; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$kit"/wheels/"$package"-*.whl
    fi
  done
  export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
}
