from airctl.cli import main

main()
