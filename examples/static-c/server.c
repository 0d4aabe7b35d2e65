/*
 * A static HTTP server for a Pith machine: no libc beyond what is linked in, no files, no
 * shell. It answers every request with a short text and tells Pith it is ready by writing
 * "ready\n" to the file descriptor named in PITH_CONTROL_FD, the same contract the guest
 * library uses for Node apps.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stopping = 0;

static void on_term(int sig) {
	(void)sig;
	stopping = 1;
}

static void tell_pith_ready(void) {
	const char *fd_text = getenv("PITH_CONTROL_FD");
	if (!fd_text) return; /* not in a Pith machine: nobody to tell */
	int fd = atoi(fd_text);
	(void)!write(fd, "ready\n", 6);
}

int main(void) {
	const char *port_text = getenv("PORT");
	int port = port_text ? atoi(port_text) : 8080;
	const char *greeting = getenv("GREETING");
	if (!greeting) greeting = "hello from static-c";

	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int server = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
	if (server < 0 || bind(server, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(server, 64) < 0) {
		perror("static-c: listen");
		return 1;
	}
	printf("static-c: listening on :%d\n", port);
	fflush(stdout);
	tell_pith_ready();

	unsigned long served = 0;
	while (!stopping) {
		int client = accept(server, NULL, NULL);
		if (client < 0) continue;
		char request[4096];
		ssize_t got = read(client, request, sizeof request - 1);
		if (got > 0) {
			char body[256];
			int body_len = snprintf(body, sizeof body, "%s (request %lu)\n", greeting, ++served);
			char response[512];
			int len = snprintf(response, sizeof response,
			                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			                   body_len, body);
			(void)!write(client, response, len);
		}
		close(client);
	}
	printf("static-c: stopping after %lu requests\n", served);
	return 0;
}
