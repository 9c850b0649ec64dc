"""Builds an isolated network and puts rules on it through Apache libcloud's CloudStack compute driver.

usage: libcloud_isolated.py <api url> <api key> <secret key> <zone name>; prints JSON.
Creates a network, deploys a node into it, acquires an address, forwards a port to the node,
opens the firewall and egress, lists it all back, then undoes everything.
"""
import json
import sys
from urllib.parse import urlparse

from libcloud.compute.providers import Provider, get_driver

url, key, secret, zone_name = sys.argv[1:5]
u = urlparse(url)
driver = get_driver(Provider.CLOUDSTACK)(key, secret, secure=False, host=u.hostname, port=u.port, path=u.path)
location = [loc for loc in driver.list_locations() if loc.name == zone_name][0]
offering = [
    o for o in driver.ex_list_network_offerings() if o.name == 'DefaultIsolatedNetworkOfferingWithSourceNatService'
][0]
network = driver.ex_create_network('libcloud tier', 'lc-tier', offering, location)
size = [s for s in driver.list_sizes() if s.name == 'Small Instance'][0]
image = [i for i in driver.list_images(location=location)][0]
node = driver.create_node(
    name='lc-node', size=size, image=image, location=location, networks=[network], ex_start_vm=True
)
address = driver.ex_allocate_public_ip(location=location, network_id=network.id)
forward = driver.ex_create_port_forwarding_rule(node, address, 22, 2222, 'tcp', openfirewall=False)
firewall = driver.ex_create_firewall_rule(address, '198.51.100.0/24', 'tcp', start_port=2222, end_port=2222)
egress = driver.ex_create_egress_firewall_rule(network.id, '10.1.1.0/24', 'tcp', start_port=443, end_port=443)
out = {
    'network': {'id': network.id, 'name': network.name, 'state': network.extra.get('state')},
    'networks': [n.name for n in driver.ex_list_networks()],
    'node': {'state': node.state, 'private_ips': node.private_ips},
    'address': {'id': address.id, 'ip': address.address},
    'public_ips': sorted(ip.address for ip in driver.ex_list_public_ips()),
    'forward': {'id': forward.id, 'public': forward.public_port, 'private': forward.private_port},
    'forwards': [r.id for r in driver.ex_list_port_forwarding_rules()],
    'firewall': [r.id for r in driver.ex_list_firewall_rules()],
    'firewall_created': firewall.id,
    'egress': [r.id for r in driver.ex_list_egress_firewall_rules()],
    'egress_created': egress.id,
}
out['deleted_egress'] = driver.ex_delete_egress_firewall_rule(egress)
out['deleted_firewall'] = driver.ex_delete_firewall_rule(firewall)
out['deleted_forward'] = driver.ex_delete_port_forwarding_rule(node, forward)
out['released'] = driver.ex_release_public_ip(address)
out['destroyed'] = driver.destroy_node(node, ex_expunge=True)
out['deleted_network'] = driver.ex_delete_network(network)
out['networks_after'] = [n.name for n in driver.ex_list_networks()]
print(json.dumps(out))
