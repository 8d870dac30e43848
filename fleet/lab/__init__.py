"""The lab fleet: hosts made of network namespaces with their own sshd and dockerd."""
