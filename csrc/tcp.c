/* tcp.c - placeholder: TCP is being written; every segment is dropped */
#include "dp.h"

void tcp_input(struct dp *dp, const struct l4_pkt *p)
{
	(void)p;
	DP_COUNT(dp, drop_ip4_proto);
}

void tcp_sock_event(struct dp *dp, struct flow *f, uint32_t events)
{
	(void)events;
	flow_free(dp, f);
}

void tcp_timer(struct dp *dp, struct flow *f)
{
	flow_free(dp, f);
}
