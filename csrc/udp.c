/* udp.c - placeholder: UDP is being written; every segment is dropped */
#include <unistd.h>

#include "dp.h"

void udp_input(struct dp *dp, const struct l4_pkt *p)
{
	(void)p;
	DP_COUNT(dp, drop_ip4_proto);
}

void udp_sock_event(struct dp *dp, struct flow *f, uint32_t events)
{
	(void)events;
	flow_free(dp, f);
}

void udp_timer(struct dp *dp, struct flow *f)
{
	flow_free(dp, f);
}

void udp_fwd_input(struct dp *dp, struct fwd_listener *l)
{
	char buf[1];

	(void)dp;
	while (recv(l->sock, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		;
}

void udp_fwd_forget(struct dp *dp, int sock)
{
	(void)dp; (void)sock;
}
