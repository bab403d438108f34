package smtpd

import (
	"context"

	"github.com/jackc/pgx/v5"

	"decimail/server/store"
)

func pgxConnect(ctx context.Context, st *store.Store) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, st.Pool().Config().ConnConfig.Copy())
}
