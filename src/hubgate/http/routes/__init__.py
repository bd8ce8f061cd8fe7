"""Route modules, one per area of the API; `ALL` is the order they are matched in."""

from hubgate.http.routes import (
    access,
    account,
    audit,
    commit,
    discussions,
    files,
    info,
    lfs,
    manage,
    mirror,
    tokens,
    xet_cas,
    xet_tokens,
)

ALL = [*xet_cas.table.routes, *account.table.routes, *tokens.table.routes,
       *discussions.table.routes, *audit.table.routes, *mirror.table.routes, *manage.table.routes,
       *commit.table.routes, *xet_tokens.table.routes, *info.table.routes, *access.table.routes, *lfs.table.routes,
       *files.table.routes]
