import asyncio, sys
sys.path.insert(0, "tests")
from benchmarks import engine
from flowbuilder_adapters.sql.migrate import upgrade
from support.postgres import create_database, local_cluster

async def main():
    with local_cluster() as server:
        url = await create_database(server)
        await upgrade(url)
        for c in [int(x) for x in sys.argv[1:]] or [1, 2]:
            r = await engine.throughput(url, c)
            print(c, r)

asyncio.run(main())
