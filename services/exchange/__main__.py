from services.exchange.main import main

main()
