from bench.sync.engine import main

main()
