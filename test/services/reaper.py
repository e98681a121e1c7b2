"""Run commands under a child subreaper and reap every process that exits.

Usage: reaper.py PID_FILE -- COMMAND [ARGS...] [-- COMMAND [ARGS...]]...

libvirtd and virtlogd daemonize, and libvirtd double-forks every QEMU process,
so all of them end up as children of the nearest subreaper, or of PID 1 when
there is none. An init that never calls wait() (as in some sandboxes and
containers) leaves each exited QEMU as a zombie, and libvirtd then waits for a
process that never disappears: defining, destroying and starting domains time
out. This process marks itself as subreaper (Linux prctl PR_SET_CHILD_SUBREAPER),
starts the given commands, and reaps its descendants until it gets SIGTERM
or none is left.
"""

import ctypes
import errno
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def split_commands(arguments):
    commands = []
    for argument in arguments:
        if argument == "--":
            commands.append([])
        elif commands:
            commands[-1].append(argument)
    return [command for command in commands if command]


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.stderr.write("usage: reaper.py PID_FILE -- COMMAND [ARGS...] [-- COMMAND [ARGS...]]...\n")
        return 2

    pid_file = sys.argv[1]
    commands = split_commands(sys.argv[2:])

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write("reaper.py: prctl(PR_SET_CHILD_SUBREAPER) failed: %s\n" % os.strerror(ctypes.get_errno()))
        return 1

    running = True

    def stop(signum, frame):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    with open(pid_file, "w") as handle:
        handle.write(str(os.getpid()))

    # Each command is expected to daemonize, so its direct process exits soon
    # and the daemon is reparented to this process.
    for command in commands:
        status = subprocess.call(command)
        if status != 0:
            sys.stderr.write("reaper.py: %s exited with status %d\n" % (" ".join(command), status))
            return 1

    while running:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            # No descendant is left to reap, for example after libvirtd.sh
            # restart moved libvirtd to a new reaper and the last QEMU
            # process this one adopted has exited.
            return 0
        except OSError as error:
            if error.errno != errno.EINTR:
                raise
            pid = 0
        if pid == 0:
            time.sleep(0.2)

    return 0


if __name__ == "__main__":
    sys.exit(main())
