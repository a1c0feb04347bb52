from runner_image.cli import main

raise SystemExit(main())
