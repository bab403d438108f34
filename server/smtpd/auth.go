package smtpd

import "errors"

// loginServer is the server side of the obsolete but common AUTH LOGIN
// (draft-murchison-sasl-login): "Username:", "Password:" challenges; go-sasl
// has no server for it. An initial response is taken as the user name.
type loginServer struct {
	auth func(user, pass string) error
	step int
	user string
}

func (l *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(resp) == 0 {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth(l.user, string(resp))
	}
	return nil, true, errors.New("unexpected response")
}
