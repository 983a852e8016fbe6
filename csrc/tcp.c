/* tcp.c - placeholder: TCP is being written; every segment is dropped */
#include <unistd.h>

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

void tcp_conn_from_host(struct dp *dp, int fd, const union inany_addr *src,
			uint16_t src_port, const union inany_addr *guest,
			uint16_t guest_port)
{
	(void)dp; (void)src; (void)src_port; (void)guest; (void)guest_port;
	close(fd);
}
