from nydus_top.cli import main

raise SystemExit(main())
