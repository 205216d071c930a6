"""The side-by-side benchmark suite, the same as ``python -m logitkit bench``.

    python benchmarks/suite.py [--ops ...] [--shapes ...] [--threads 1,2] [--repeat 5]
                               [--quick] [--peers numpy,scipy,torch,jax]
                               [--json FILE] [--markdown FILE] [--plot FILE.png]
                               [--isa NAME] [--interleave] [--logsumexp-out]

See ``--help`` and benchmarks/README.md for the options and how to read the table.
"""

from __future__ import annotations

import sys

from logitkit._bench import main

if __name__ == "__main__":
    sys.exit(main())
