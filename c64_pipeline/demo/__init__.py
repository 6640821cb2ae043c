"""The demo's own fixtures, apart from the pipeline: the `make demo` command (`cli`), the bundled sample manuals and
their renderer (`sample_manuals`, sources in `sample_sources/`), the sample exam (`sample_exam/`) and the tiny demo
model builder (`model`). All of it is package data, so the demo runs from an installed package too."""
