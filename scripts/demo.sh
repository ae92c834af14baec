#!/usr/bin/env bash
# Set everything up, then open the viewer on the built-in demo study.
# Extra arguments go to pe-viewer (e.g. --screenshot demo.png to render headless).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}${QT_QPA_PLATFORM:-}" ]; then
    if command -v xvfb-run >/dev/null; then
        exec xvfb-run -a .venv/bin/pe-viewer --demo "$@"
    fi
    echo "No display found. Run on a desktop, under 'xvfb-run', or headless with" >&2
    echo "  QT_QPA_PLATFORM=offscreen bash scripts/demo.sh --screenshot demo.png" >&2
    exit 1
fi
exec .venv/bin/pe-viewer --demo "$@"
