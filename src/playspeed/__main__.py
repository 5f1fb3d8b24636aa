from playspeed.cli import main

raise SystemExit(main())
