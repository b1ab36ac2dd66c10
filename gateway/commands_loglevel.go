package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/gateway/command"
)

// logLevelCommand: body {"level": "debug"|"info"|"warn"|"error"}; sets
// zerolog's global level for the whole process (zerolog.SetGlobalLevel)
// and replies {"previous": the global level before, "level": the one
// set}. The global level is a floor over every logger's own. The outpost
// binary builds its logger at debug and sets the global level to the
// config's log_level (cli.NewProcessLogger), so the global level is the
// only filter and this command lowers it to debug as well as raising it;
// a logger an embedding program builds at a higher level (Options.Logger)
// still drops what is below its own. Until the next restart only: the
// config file is not changed.
func logLevelCommand() command.Command {
	return command.Command{Name: "log.level", Run: func(_ context.Context, body []byte) ([]byte, error) {
		args, err := readStringMap(body, 1)
		if err != nil {
			return nil, err
		}
		s, ok := args["level"]
		if !ok {
			return nil, command.Invalid(errors.New(`body: want {"level": "debug|info|warn|error"}`))
		}
		var lvl zerolog.Level
		switch s {
		case "debug":
			lvl = zerolog.DebugLevel
		case "info":
			lvl = zerolog.InfoLevel
		case "warn":
			lvl = zerolog.WarnLevel
		case "error":
			lvl = zerolog.ErrorLevel
		default:
			return nil, command.Invalid(fmt.Errorf("level %q: want debug, info, warn or error", trimArg(s)))
		}
		prev := zerolog.GlobalLevel()
		zerolog.SetGlobalLevel(lvl)
		b := msgp.AppendMapHeader(nil, 2)
		b = msgp.AppendString(b, "previous")
		b = msgp.AppendString(b, prev.String())
		b = msgp.AppendString(b, "level")
		return msgp.AppendString(b, lvl.String()), nil
	}}
}

// trimArg shortens an argument quoted in an error.
func trimArg(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
