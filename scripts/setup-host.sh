#!/usr/bin/env bash
# Host set-up for vmbench, run by `make setup` (so by `make bench` and `make test`).
# Idempotent: installs only what is missing and starts only daemons that do not answer.
# As root on Debian/Ubuntu it does the work. As a regular user it does what a user may and
# prints the one-time root steps once, at the end, as a short copy-paste block.
#   scripts/setup-host.sh           what `make bench` needs
#   scripts/setup-host.sh --tests   that plus what only the tests need (`make test`, CI)
set -u

for_tests=0
[ "${1:-}" = "--tests" ] && for_tests=1

# Daemons and admin tools live in sbin, which a regular user's PATH lacks.
PATH=$PATH:/usr/sbin:/sbin
log_dir=${VMBENCH_LOG_DIR:-/var/log/vmbench}
say() { printf 'setup: %s\n' "$*"; }
is_root() { [ "$(id -u)" = 0 ]; }
repo_dir=$(cd "$(dirname "$0")/.." && pwd)

# Not root: what `sudo make host` would do (packages, apt lists, daemons), collected here and
# printed once by root_steps_block.
HOST_REASONS=()
needs_host() { HOST_REASONS+=("$1"); }

APT_PACKAGES=(
  docker.io            # Docker Engine (the container backend)
  podman               # daemonless container engine (the podman backend)
  qemu-system-x86      # qemu-system-x86_64 (the VM backend)
  qemu-system-arm      # qemu-system-aarch64 (foreign-architecture VMs)
  qemu-utils           # qemu-img
  cpio                 # initramfs archives
  e2fsprogs            # mkfs.ext4 -d for disk images
  debootstrap          # the debian guest, built as root
  mmdebstrap           # the debian guest, built by a regular user (--mode=unshare)
  uidmap               # newuidmap/newgidmap: mmdebstrap's user namespace
  python3-venv         # `make venv` with Debian's python3 (a regular user's)
  zstd
  # Bootable disks (bench/guests/bootdisk.py), built from image files, no root or loop device:
  fdisk                # sfdisk writes the MBR/GPT partition table into the image
  dosfstools           # mkfs.vfat: the boot partition / EFI system partition
  mtools               # mcopy into a FAT image without mounting it
  syslinux             # BIOS: syslinux --install on the unmounted FAT image
  syslinux-common      # BIOS: the MBR code (mbr.bin) and ldlinux.c32
  grub-efi-amd64-bin   # UEFI: GRUB's x86_64-efi modules (grub-mkimage from grub-common)
  ovmf                 # UEFI firmware for QEMU
  # The vagrant backend (libvirt provider here; VirtualBox on lab machines is the user's).
  # Not libvirt-daemon-system: it brings a NAT network that autostarts.
  vagrant
  vagrant-libvirt
  libvirt-daemon
  libvirt-daemon-driver-qemu
  libvirt-clients
)

# Only the tests need these; `make bench` never installs them.
TEST_APT_PACKAGES=(
  libreoffice-impress  # renders the slide deck to PDF (tests/test_slides.py)
  poppler-utils        # pdftoppm: the rendered deck's pages as PNGs
  openssh-server       # tests/test_fleet.py starts its own sshd on 127.0.0.1 (never the system's)
  chromium             # opens report.html and compare.html headless (tests/test_html_browser.py)
  chromium-driver      # chromedriver for selenium: nothing downloads a driver
)

is_debian() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }
wanted_packages() {
  printf '%s\n' "${APT_PACKAGES[@]}"
  [ "$for_tests" = 1 ] && printf '%s\n' "${TEST_APT_PACKAGES[@]}"
  return 0
}
missing_packages() {
  local p
  for p in $(wanted_packages); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf '%s ' "$p"
  done
}

install_packages() {
  local missing
  missing=$(missing_packages)
  if [ -z "$missing" ]; then
    say "Debian packages present"
    return 0
  fi
  if ! is_root; then
    needs_host "install ${missing% }"
    return 0
  fi
  say "installing: $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || say "apt-get update failed (offline?)"
  # shellcheck disable=SC2086
  apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >"$log_dir/apt.log" 2>&1 \
    || { say "apt-get install failed; see $log_dir/apt.log"; tail -5 "$log_dir/apt.log"; return 1; }
}

apt_lists_fresh() {
  # Guests are built from packages `apt-get download` fetches: the lists must know them.
  if ! apt-cache show --no-all-versions linux-image-cloud-amd64 >/dev/null 2>&1; then
    if is_root; then
      say "updating apt lists (guest kernels come from the Debian archive)"
      apt-get update -q >/dev/null || say "apt-get update failed (offline?)"
    else
      needs_host "apt-get update (apt knows no linux-image-cloud-amd64)"
    fi
  fi
}

foreign_arch_lists() {
  # The compat scenario's arm64 guest (busybox-arm64): its busybox-static and cloud kernel
  # .debs are fetched with `apt-get download` and unpacked, never installed on this host;
  # apt must know the arm64 package lists for that.
  local arch=arm64
  [ "$(dpkg --print-architecture)" = "$arch" ] && return 0
  apt-cache show --no-all-versions "linux-image-cloud-$arch:$arch" >/dev/null 2>&1 && return 0
  if ! is_root; then
    needs_host "dpkg --add-architecture $arch (the arm64 guest's packages)"
    return 0
  fi
  dpkg --print-foreign-architectures | grep -qx "$arch" || dpkg --add-architecture "$arch"
  say "updating apt lists for $arch (download only: the arm64 guest's packages are never installed)"
  apt-get update -q >/dev/null || say "apt-get update failed (offline?)"
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

start_dockerd() {
  if docker_answers; then
    say "Docker daemon answers"
    return 0
  fi
  if ! is_root; then
    # A socket we may not open is the docker group's business (user_steps), not the daemon's.
    if [ -S /var/run/docker.sock ] && [ ! -w /var/run/docker.sock ]; then
      say "the Docker daemon's socket refuses $(id -un): the docker group (below)"
      return 0
    fi
    needs_host "start dockerd (no Docker daemon answers)"
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    say "dockerd not installed; the docker backend will be skipped"
    return 0
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl start docker 2>/dev/null && docker_answers && { say "started docker.service"; return 0; }
  fi
  say "starting dockerd (no bridge, no iptables; log: $log_dir/dockerd.log)"
  setsid dockerd --bridge=none --iptables=false --ip-forward=false \
    --pidfile /run/vmbench-dockerd.pid >"$log_dir/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    docker_answers && { say "Docker daemon answers"; return 0; }
    sleep 1
  done
  say "dockerd did not answer within 60 s; see $log_dir/dockerd.log"
  tail -5 "$log_dir/dockerd.log"
  return 1
}

unix_socket_answers() {
  python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$1" 2>/dev/null
}

libvirt_answers() {
  if is_root; then
    timeout 10 virsh -c qemu:///system version >/dev/null 2>&1
  else
    [ -S /var/run/libvirt/libvirt-sock ] && timeout 10 virsh -c qemu:///system version >/dev/null 2>&1
  fi
}

# Our own qemu.conf, written only where none exists (libvirt-daemon-system ships one; a user's
# customised file is never touched). qemu runs as root so it can read the guest files in the
# vmbench cache and write the serial log the harness watches.
QEMU_CONF_MARK="# written by vmbench scripts/setup-host.sh"
write_qemu_conf() {
  local conf=/etc/libvirt/qemu.conf
  if [ -e "$conf" ] && ! head -1 "$conf" | grep -qF "$QEMU_CONF_MARK"; then
    grep -qE '^[[:space:]]*user[[:space:]]*=[[:space:]]*"root"' "$conf" \
      || say "$conf exists and is not ours; left as is (vagrant needs qemu to read the vmbench cache)"
    return 0
  fi
  mkdir -p /etc/libvirt
  printf '%s\nuser = "root"\ngroup = "root"\nsecurity_driver = "none"\n' \
    "$QEMU_CONF_MARK" >"$conf.tmp" && mv "$conf.tmp" "$conf"
}

start_libvirtd() {
  command -v libvirtd >/dev/null 2>&1 || { say "libvirtd not installed; the vagrant backend will be skipped"; return 0; }
  if libvirt_answers; then
    say "libvirtd answers"
    return 0
  fi
  if ! is_root; then
    # The system socket exists but refuses us: the libvirt group (user_steps) or
    # qemu:///session, not a daemon start.
    if [ -S /var/run/libvirt/libvirt-sock ]; then
      say "libvirtd (qemu:///system) refuses $(id -un); vagrant uses qemu:///session where it works (make doctor)"
      return 0
    fi
    needs_host "start libvirtd (none answers)"
    return 0
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl start virtlogd libvirtd 2>/dev/null && libvirt_answers \
      && { say "started libvirtd.service"; return 0; }
  fi
  # No systemd (containers, CI): libvirtd by hand. It needs the libvirt-qemu user and group,
  # its log folder, and a qemu.conf that runs guests as root without a security driver.
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  getent passwd libvirt-qemu >/dev/null \
    || useradd --system --gid libvirt-qemu --no-create-home --home-dir /var/lib/libvirt \
      --shell /usr/sbin/nologin libvirt-qemu
  mkdir -p /var/log/libvirt /var/lib/libvirt /run/libvirt
  write_qemu_conf
  # A virtlogd that runs already (ours or not) answers on its socket: start one only if none does.
  if ! unix_socket_answers /run/libvirt/virtlogd-sock; then
    virtlogd -d -p /run/vmbench-virtlogd.pid || { say "virtlogd did not start"; return 1; }
  fi
  say "starting libvirtd (log: $log_dir/libvirtd.log)"
  LIBVIRT_LOG_OUTPUTS="3:file:$log_dir/libvirtd.log" libvirtd -d -p /run/vmbench-libvirtd.pid \
    || { say "libvirtd did not start; see $log_dir/libvirtd.log"; return 1; }
  for _ in $(seq 1 30); do
    libvirt_answers && { say "libvirtd answers"; return 0; }
    sleep 1
  done
  say "libvirtd did not answer within 30 s; see $log_dir/libvirtd.log"
  tail -5 "$log_dir/libvirtd.log" 2>/dev/null
  return 1
}

# -- the one-time steps for a regular user -------------------------------------------------

# The user the hints are for: ourselves, or whoever ran `sudo make host`.
target_user() {
  if ! is_root; then id -un; elif [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    printf '%s' "$SUDO_USER"; fi
}
in_group() { id -nG "$1" 2>/dev/null | tr ' ' '\n' | grep -qx "$2"; }

# Groups the user should join: docker (the daemon's socket), kvm (/dev/kvm), libvirt (the
# system URI), each only where it exists and the user is not in it yet.
missing_groups() {
  local u=$1 g groups=()
  for g in docker kvm libvirt; do
    getent group "$g" >/dev/null || continue
    in_group "$u" "$g" || groups+=("$g")
  done
  local IFS=,
  printf '%s' "${groups[*]}"
}

# /dev/kvm that only root may open and no kvm group to open it with (Debian's udev rule makes
# it root:kvm 0660; a host without udev keeps root 0600).
kvm_needs_group() {
  [ -c /dev/kvm ] && ! getent group kvm >/dev/null && [ "$(stat -c %G /dev/kvm)" = root ]
}

free_subid_start() {
  local end=100000 f start count
  for f in /etc/subuid /etc/subgid; do
    [ -r "$f" ] || continue
    while IFS=: read -r _ start count; do
      case "$start$count" in ''|*[!0-9]*) continue ;; esac
      [ $((start + count)) -gt "$end" ] && end=$((start + count))
    done <"$f"
  done
  printf '%s' "$end"
}

has_subids() {
  local u=$1 uid f
  uid=$(id -u "$u")
  for f in /etc/subuid /etc/subgid; do
    grep -qE "^($u|$uid):[0-9]+:[0-9]+" "$f" 2>/dev/null || return 1
  done
}

USER_STEPS=()
user_steps() {
  local u=$1 groups start
  [ -n "$u" ] || return 0
  if kvm_needs_group; then
    USER_STEPS+=("sudo groupadd --system kvm && sudo chgrp kvm /dev/kvm && sudo chmod 0660 /dev/kvm")
    groups=$(missing_groups "$u")
    groups=${groups:+$groups,}kvm
  else
    groups=$(missing_groups "$u")
  fi
  [ -n "$groups" ] && USER_STEPS+=("sudo usermod -aG $groups $u    # then log out and in again")
  if ! has_subids "$u"; then
    start=$(free_subid_start)
    USER_STEPS+=("sudo usermod --add-subuids $start-$((start + 65535)) --add-subgids $start-$((start + 65535)) $u    # the debian guest, built without root")
  fi
  # Joined already, but this login predates it: the groups apply to new logins only.
  if ! is_root; then
    local g
    for g in docker kvm libvirt; do
      in_group "$u" "$g" && ! id -nG | tr ' ' '\n' | grep -qx "$g" \
        && say "you are in group $g, but this login is older: log out and in again (or: newgrp $g)"
    done
  fi
  return 0
}

root_steps_block() {
  local steps=() reasons line
  if [ "${#HOST_REASONS[@]}" -gt 0 ]; then
    reasons=$(printf '%s; ' "${HOST_REASONS[@]}")
    steps+=("sudo make -C $repo_dir host    # ${reasons%; }")
  fi
  steps+=("${USER_STEPS[@]}")
  [ "${#steps[@]}" -gt 0 ] || return 0
  if is_root; then
    say "one-time steps for ${SUDO_USER}, as root (copy-paste):"
  else
    say "one-time steps that need root (ask your admin, or copy-paste):"
  fi
  echo
  for line in "${steps[@]}"; do printf '    %s\n' "$line"; done
  echo
  is_root || say "carrying on with what works now; 'make doctor' says what does and why"
}

main() {
  if ! is_debian; then
    say "not Debian/Ubuntu: install Docker Engine, qemu-system-x86, cpio, e2fsprogs (and Vagrant) yourself;"
    say "vmbench runs the backends it finds (see: vmbench doctor)"
    return 0
  fi
  is_root && mkdir -p "$log_dir"
  local rc=0
  install_packages || rc=1
  apt_lists_fresh
  foreign_arch_lists
  start_dockerd || rc=1
  start_libvirtd || rc=1
  user_steps "$(target_user)"
  root_steps_block
  return $rc
}

main "$@"
