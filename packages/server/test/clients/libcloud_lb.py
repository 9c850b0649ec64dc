"""Runs a load balancer's life through Apache libcloud's CloudStack load-balancer driver.

usage: libcloud_lb.py <api url> <api key> <secret key> <network id> <vm id> <vm id>; prints JSON.
create_balancer associates an address, creates the rule (reading its id from the job's answer,
before the job ends) and attaches the members; destroy_balancer deletes it and gives the address
back.
"""
import json
import sys
from urllib.parse import urlparse

from libcloud.loadbalancer.base import Algorithm, Member
from libcloud.loadbalancer.providers import Provider, get_driver

url, key, secret, network_id, vm1, vm2 = sys.argv[1:7]
u = urlparse(url)
lb = get_driver(Provider.CLOUDSTACK)(key, secret, secure=False, host=u.hostname, port=u.port, path=u.path)
balancer = lb.create_balancer(
    'lc-web',
    members=[Member(vm1, None, None), Member(vm2, None, None)],
    protocol='tcp',
    port=80,
    algorithm=Algorithm.ROUND_ROBIN,
    private_port=8080,
    network_id=network_id,
)
out = {
    'created': {'id': balancer.id, 'ip': balancer.ip, 'port': balancer.port, 'private': balancer.ex_private_port},
    'listed': [b.id for b in lb.list_balancers()],
    'got': lb.get_balancer(balancer.id).name,
    'members': sorted(m.id for m in lb.balancer_list_members(balancer)),
    'state': lb.get_balancer(balancer.id).state,
}
lb.balancer_detach_member(balancer, Member(vm2, None, None))
out['after_detach'] = sorted(m.id for m in lb.balancer_list_members(balancer))
lb.destroy_balancer(balancer)
out['after_destroy'] = [b.id for b in lb.list_balancers()]
print(json.dumps(out))
