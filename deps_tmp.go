package main
import (
 _ "github.com/emersion/go-imap/v2"
 _ "github.com/emersion/go-imap/v2/imapclient"
 _ "github.com/emersion/go-smtp"
 _ "github.com/emersion/go-sasl"
 _ "github.com/emersion/go-message"
 _ "github.com/emersion/go-message/charset"
 _ "github.com/jackc/pgx/v5/pgxpool"
 _ "github.com/testcontainers/testcontainers-go"
 _ "github.com/testcontainers/testcontainers-go/modules/postgres"
 _ "pgregory.net/rapid"
 _ "github.com/google/go-cmp/cmp"
 _ "golang.org/x/crypto/bcrypt"
)
func main(){}
