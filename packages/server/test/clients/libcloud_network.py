"""Manages security groups and reads the address lists through Apache libcloud's CloudStack driver.

usage: libcloud_network.py <api url> <api key> <secret key>; prints JSON.
"""
import json
import sys
from urllib.parse import urlparse

from libcloud.compute.providers import Provider, get_driver

url, key, secret = sys.argv[1:4]
u = urlparse(url)
driver = get_driver(Provider.CLOUDSTACK)(key, secret, secure=False, host=u.hostname, port=u.port, path=u.path)
created = driver.ex_create_security_group('lc-web', description='libcloud web')
authorized = driver.ex_authorize_security_group_ingress('lc-web', 'tcp', '0.0.0.0/0', 22)
groups = driver.ex_list_security_groups()
out = {
    'created': created,
    'authorized': authorized,
    'groups': groups,
    # The three calls list_nodes makes besides listVirtualMachines.
    'public_ips': [ip.address for ip in driver.ex_list_public_ips()],
    'port_forwarding': driver.ex_list_port_forwarding_rules(),
    'ip_forwarding': driver._sync_request('listIpForwardingRules'),
}
authorized2 = driver.ex_authorize_security_group_ingress('lc-web', 'icmp', '10.0.0.0/8')
out['icmp'] = authorized2['ingressrule'][0]
for rule in driver.ex_list_security_groups(securitygroupname='lc-web')[0]['ingressrule']:
    driver._async_request('revokeSecurityGroupIngress', params={'id': rule['ruleid']}, method='GET')
out['deleted'] = driver.ex_delete_security_group('lc-web')
print(json.dumps(out))
