"""Grading: every submission runs in a confined kernel process of its own; four process roles.

    grader                        template                  supervisor            kernel
    (dlcourse grade / check,      (template_main: torch,    (supervisor: outside  (runner, sandbox:
     a Dask worker; engine,        IPython imported once)    the PID namespace)    student code)
     policy, template, batch)
       │  KernelConfig + socket fd   │
       ├────────────────────────────►│ fork ─────────────────►│ fork (PID namespace) ─►│ sandbox.enter
       │◄──────────── {"pid": N} ────┤                        │  forwards SIGINT ─────►│
       │                                                       waits, exits with it    │
       │◄────────────────────────────── Hello (what confinement held) ─────────────────┤
       ├──────────────────────────────── RunCell (source, nonce) ─────────────────────►│
       │◄──────────────────── CellReply (outputs, verdict, partial score, nonce) ──────┤
       ├──────────────────────────────── STOP, or SIGINT / SIGKILL (policy.kill) ─────►│

The messages, their one size cap, and the config are in `protocol`; the defaults in `settings`; what
a kernel may see and hold in `policy` (grader side) and `sandbox` (applied inside the kernel). The
template lives as long as the command that created it (`template.Template`, a `with` block); the
kernel and its supervisor as long as one notebook. Without a PID namespace there is no supervisor:
the template forks the kernel directly.

By process: grader: engine, restore, autotests (it starts a Jupyter kernel of its own on the
instructor's source), policy, template, batch, cluster (client), gradebook, feedback,
submissions, sample, cli, settings; template: template_main; kernel: runner, sandbox; supervisor:
supervisor; all: protocol.
"""
