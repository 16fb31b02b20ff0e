"""xdpex traffic tools: scapy layers, client library, lab, load generator runner, pcap."""
