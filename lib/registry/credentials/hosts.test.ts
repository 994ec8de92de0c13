import { describe, expect, it } from 'vitest';
import { hostAllowed, hostMatches } from './hosts';

describe('hostMatches', () => {
  it('matches exact hosts with their port, and subdomains of a wildcard only', () => {
    expect(hostMatches('127.0.0.1:5001', '127.0.0.1:5001')).toBe(true);
    expect(hostMatches('127.0.0.1:5001', '127.0.0.1:5002')).toBe(false);
    expect(hostMatches('*.azurecr.io', 'team.azurecr.io')).toBe(true);
    expect(hostMatches('*.azurecr.io', 'azurecr.io')).toBe(false);
    expect(hostMatches('*.azurecr.io', 'team.azurecr.io.evil.example')).toBe(false);
  });
});

describe('hostAllowed', () => {
  it('gives private_registry credentials to any host unless hosts are configured', () => {
    expect(hostAllowed('private_registry', undefined, 'docker.io')).toBe(true);
    expect(hostAllowed('private_registry', ['registry.example.com'], 'docker.io')).toBe(false);
  });

  it('limits cloud types to their registries by default', () => {
    expect(hostAllowed('ecr', undefined, '123456789012.dkr.ecr.us-east-1.amazonaws.com')).toBe(true);
    expect(hostAllowed('ecr', undefined, 's3.amazonaws.com')).toBe(false);
    expect(hostAllowed('acr', undefined, 'team.azurecr.io')).toBe(true);
    expect(hostAllowed('acr', undefined, 'gcr.io')).toBe(false);
    expect(hostAllowed('gcr', undefined, 'gcr.io')).toBe(true);
    expect(hostAllowed('gcr', undefined, 'europe-west1-docker.pkg.dev')).toBe(true);
    expect(hostAllowed('gcr', undefined, 'docker.io')).toBe(false);
  });
});
