package conformance

// keepAliveOpts: OpenBSD sets keep-alive timing only system-wide (sysctl
// net.inet.tcp.keepidle and keepintvl), so there is no per-socket option
// to compare.
var keepAliveOpts []sockopt
