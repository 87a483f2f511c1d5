"""Thin adapters, one per AWS service. Each takes an injected boto3 client.

Application code never branches on where AWS is: boto3 reads
``AWS_ENDPOINT_URL`` (moto locally, nothing in Lambda).
"""
