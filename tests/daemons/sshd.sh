#!/usr/bin/env bash
# A private OpenSSH server on 127.0.0.1 for the scheduler tests and CI.
#   sshd.sh up DIR PORT   makes a host key, a user key and an sshd_config in DIR, starts sshd
#                         (listening on 127.0.0.1:PORT only, logging in as the current user with
#                         that key only) and writes DIR/ssh_config, a client config whose host
#                         alias `fwbench-test` reaches it. Idempotent: a running one is kept.
#   sshd.sh down DIR      stops the sshd started in DIR.
set -euo pipefail
cmd=${1:-}
dir=${2:-}
[ -n "$dir" ] || { echo "usage: $0 up DIR PORT | down DIR" >&2; exit 2; }

running() { [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; }

up() {
  port=${1:?usage: $0 up DIR PORT}
  mkdir -p "$dir"
  chmod 700 "$dir"
  if running; then echo "sshd.sh: already running in $dir"; return 0; fi
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C fwbench-test-host -f "$dir/host_ed25519"
  [ -f "$dir/user_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C fwbench-test-user -f "$dir/user_ed25519"
  cp "$dir/user_ed25519.pub" "$dir/authorized_keys"
  chmod 600 "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $(id -un)
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
  echo "[127.0.0.1]:$port $(cat "$dir/host_ed25519.pub")" >"$dir/known_hosts"
  cat >"$dir/ssh_config" <<CONF
Host fwbench-test
  HostName 127.0.0.1
  Port $port
  User $(id -un)
  IdentityFile $dir/user_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
CONF
  # Privilege separation directory (Debian's sshd refuses to start without it when run as root).
  [ "$(id -u)" -ne 0 ] || mkdir -p /run/sshd
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  for _ in $(seq 1 50); do
    if ssh -F "$dir/ssh_config" fwbench-test true 2>/dev/null; then echo "sshd.sh: sshd up on 127.0.0.1:$port ($dir)"; return 0; fi
    sleep 0.1
  done
  echo "sshd.sh: sshd did not accept a login in 5 s; see $dir/sshd.log" >&2
  return 1
}

down() {
  if running; then
    pid=$(cat "$dir/sshd.pid")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "sshd.sh: stopped sshd (pid $pid)"
  fi
}

case "$cmd" in
  up) up "${3:-}" ;;
  down) down ;;
  *) echo "usage: $0 up DIR PORT | down DIR" >&2; exit 2 ;;
esac
