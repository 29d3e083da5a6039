from campaignsvc.cli import main

raise SystemExit(main())
