"""``python -m qwen3_rag.cli``: the ``qwen3-rag`` command."""

import sys

from qwen3_rag.cli import main

sys.exit(main())
