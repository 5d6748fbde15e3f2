#!/usr/bin/env bash
# The fleet's SSH test starts an sshd of its own on the loopback: this installs the binary (openssh-server)
# without starting or enabling the package's service. Where systemd runs the host, installing the package
# would enable that service, so it only says what the test needs.
set -euo pipefail
if command -v sshd >/dev/null || [ -x /usr/sbin/sshd ]; then exit 0; fi
skip="the fleet's SSH test will be skipped"
if [ -d /run/systemd/system ]; then
  echo "ensure-sshd: openssh-server is not installed; $skip (install it to run that test)" >&2
  exit 0
fi
SUDO=$( [ "$(id -u)" -eq 0 ] || echo sudo )
policy=/usr/sbin/policy-rc.d   # exit 101: the package's service is not started
made=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && made=1
fi
trap '[ -z "$made" ] || $SUDO rm -f "$policy"' EXIT
echo "ensure-sshd: installing openssh-server (not started)" >&2
{ $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
  && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server; } \
  >/dev/null 2>&1 || echo "ensure-sshd: openssh-server could not be installed; $skip" >&2
