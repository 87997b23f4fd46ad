"""`sandbox --help` as typer prints it at 80 columns and more, so it needs no typer to print.

Generated: `python -m sandbox.help_text` rewrites this file from the typer app;
tests/test_quick.py fails when the two differ. `{prog}` is the program's name.
"""

MAIN_HELP = (
    'Usage: {prog} [OPTIONS] COMMAND [ARGS]...\n'
    '\n'
    '  Bring up a multi-service setup on loopback addresses, offline, in a second.\n'
    '\n'
    '  Every service gets its own address in 127.0.0.0/8 (or ::1); port conflicts\n'
    '  are found and explained before anything serves; `down` verifies nothing is\n'
    '  left.\n'
    '\n'
    '  Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 invalid profile, 4 port\n'
    '  conflict, 5 not ready / probe failed, 6 teardown incomplete, 130\n'
    '  interrupted, 141 output pipe closed, 143 terminated (SIGTERM).\n'
    '\n'
    'Options:\n'
    '  --debug               Show tracebacks for errors.\n'
    '  --install-completion  Install completion for the current shell.\n'
    '  --show-completion     Show completion for the current shell, to copy it or\n'
    '                        customize the installation.\n'
    '  --help                Show this message and exit.\n'
    '\n'
    'Commands:\n'
    '  profiles  List the profiles that can be found by name, with where each...\n'
    '  validate  Check profiles strictly; print every problem as FILE:LINE:COL...\n'
    '  schema    Print the JSON Schema of the profile format (for editor...\n'
    "  plan      Dry run: every service's address, port and URL, and every...\n"
    '  probe     Is it reachable, and how: open, refused, timeout,...\n'
    '  ports     Who listens on loopback, with owners (like `ss -ltnp` / `lsof...\n'
    '  doctor    Is loopback healthy: 127/8 beyond 127.0.0.1, ::1, what...\n'
    '  up        Bring a profile up: plan, bind every socket, start in order,...\n'
    '  status    Every running sandbox and its services: ready, starting,...\n'
    "  logs      Print the logs of a sandbox's services (the last lines; -f...\n"
    "  requests  What a sandbox's stubs received, oldest first (-f follows...\n"
    '  down      Stop a sandbox from its record, then verify every port...\n'
    "  reload    Re-read the profile and swap changed stubs' routes; their...\n"
    "  ca        Print the path of the sandbox's CA certificate, for `curl...\n"
    '  restart   Restart services of a running sandbox, each until it is ready...\n'
    '  version   Print the version.\n'
    '  explain   Can this endpoint be bound now, who holds it and under which...\n'
    '  ping      ICMP echo to a loopback address, like the system ping, with...\n'
    '  hosts     Hosts-file lines that give each service a name...\n'
    "  import    Turn another tool's stubs or stack into a profile, with a...\n"
    '  export    Write a compose file or Kubernetes manifests in which each...\n'
    '  lab       Small, reversible situations to practise on: a port taken,...\n'
)  # fmt: skip

if __name__ == "__main__":
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys; sys.argv = ['{prog}', '--help']; from sandbox.cli import main; main()"
    env = {**os.environ, "COLUMNS": "80"}
    text = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    lines = "".join(f"    {line!r}\n" for line in text.splitlines(keepends=True))
    path = Path(__file__)
    source = path.read_text(encoding="utf-8")
    head, _, rest = source.partition("MAIN_HELP = ")
    tail = rest[rest.index("\n\nif __name__") :]
    path.write_text(f"{head}MAIN_HELP = (\n{lines})  # fmt: skip{tail}", encoding="utf-8")
