"""`python -m c64_pipeline.demo`: see `c64_pipeline.demo.cli`."""

import sys

from c64_pipeline.demo.cli import main

sys.exit(main())
