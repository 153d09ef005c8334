# shellcheck shell=bash
# `apt_get ARGS...`: apt-get that waits for another apt-get or dpkg to finish instead of failing.
#
# Sourced by install-tools.sh. apt-get waits for the dpkg lock itself when given
# DPkg::Lock::Timeout (apt >= 1.9.11); the locks that option does not cover (the package lists'
# lock taken by `apt-get update`) are waited for by retrying while apt says it could not get a
# lock. Both waits end after APT_LOCK_TIMEOUT seconds (default 600), then apt-get's own failure
# is returned with one line saying the lock was still held. Other failures return at once.

APT_LOCK_TIMEOUT="${APT_LOCK_TIMEOUT:-600}"
APT_LOCK_POLL="${APT_LOCK_POLL:-5}"

apt_get() {
    local deadline=$((SECONDS + APT_LOCK_TIMEOUT)) err rc said=0
    err="$(mktemp)"
    while true; do
        rc=0
        apt-get -o "DPkg::Lock::Timeout=${APT_LOCK_TIMEOUT}" "$@" 2>"${err}" || rc=$?
        if (( rc == 0 )) || ! grep -qiE 'could not (get|open) lock|unable to (lock|acquire)' "${err}"; then
            cat "${err}" >&2
            rm -f "${err}"
            return "${rc}"
        fi
        if (( SECONDS >= deadline )); then
            cat "${err}" >&2
            rm -f "${err}"
            printf 'install-tools: apt is still locked by another apt-get or dpkg after %ss; run again when it has finished (APT_LOCK_TIMEOUT sets the wait)\n' \
                "${APT_LOCK_TIMEOUT}" >&2
            return "${rc}"
        fi
        if (( ! said )); then
            printf 'install-tools: another apt-get or dpkg holds the lock; waiting up to %ss\n' \
                "${APT_LOCK_TIMEOUT}" >&2
            said=1
        fi
        sleep "${APT_LOCK_POLL}"
    done
}
