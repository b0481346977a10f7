"""The programs users run: the `spot` command line and the quickstart.

    cli          `spot train | evaluate | segment | quickstart | ...`: parses options, calls the library
    options      the commands' options, declared once: the parser, the library calls and book/cli.md
    quickstart   `spot quickstart`: teacher, student and baseline on the built-in scenes, on a CPU

The top layer: may import every other part of the package; nothing imports it.
"""
