import sys

from sizer.cli.main import main

sys.exit(main())
