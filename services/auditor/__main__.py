from services.auditor.main import main

main()
