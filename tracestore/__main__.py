"""``python -m tracestore``: the same as ``boutique tracestore``."""

import sys

from .server import main

sys.exit(main())
