import sys

from otelbridge.cli import main

sys.exit(main())
