from datashare_adapter.cli import main

main()
