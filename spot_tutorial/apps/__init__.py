"""The programs users run: the `spot` command line and the quickstart.

    cli          `spot train | evaluate | segment | quickstart | ...`: parses options, calls the library
    quickstart   `spot quickstart`: teacher, student and baseline on the built-in scenes, on a CPU

The top layer: may import every other part of the package; nothing imports it.
"""
