#include "test_database.h"

#include "pg_server.h"
#include "shared/xalloc.h"

#include <stdlib.h>
#include <string.h>

bool test_database_is_postgres(void)
{
    const char *e = getenv("SHOP_TEST_DATABASE");
    return e && (strcmp(e, "postgres") == 0 || strcmp(e, "postgresql") == 0);
}

const char *test_database_engine(void)
{
    return test_database_is_postgres() ? "postgres" : "sqlite";
}

char *test_database_url_named(const char *dir, const char *file)
{
    if (test_database_is_postgres())
        return pg_test_database(pg_server_shared(), "shop");
    return xasprintf("sqlite:///%s/%s", dir, file);
}

char *test_database_url(const char *dir)
{
    return test_database_url_named(dir, "shop.db");
}
