"""The subcommands of ``nydus-top``, one module each, named after the command.

Each module provides ``add_arguments(parser)`` and ``run(args) -> int``; :mod:`nydus_top.cli`
imports a module only when its command runs, so ``nydus-top ps`` never pays for Textual.
"""
