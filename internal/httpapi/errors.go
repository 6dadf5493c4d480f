package httpapi

import (
	"errors"

	"github.com/snapcompose/snapcompose/internal/domain"
)

func asError(err error, target **domain.Error) bool { return errors.As(err, target) }
