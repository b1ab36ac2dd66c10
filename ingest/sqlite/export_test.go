package sqlite

// ActiveAlertsQuery is the SQL and arguments of ActiveAlerts, for the
// test of its plan.
var ActiveAlertsQuery = activeAlertsQuery
