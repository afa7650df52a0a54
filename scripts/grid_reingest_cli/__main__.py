import sys

from grid_reingest_cli.main import main

sys.exit(main())
