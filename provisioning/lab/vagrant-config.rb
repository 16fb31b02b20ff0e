# Prints, as JSON, the configuration Vagrant resolves from the Vagrantfile for each lab VM under a
# given provider (CPUs, memory, provider customizations, networks, provisioners, synced folders),
# after running Vagrant's own config validation with that provider's checks included. Unlike
# `vagrant validate -p`, the provider block is validated too; the provider itself need not be
# installed (like `vagrant validate -p`, it is treated as usable), so this runs on any machine with
# Debian's vagrant package. Used by tests/test_deploy_vagrant.py and to review a change.
#
# Usage (from the repository root): ruby provisioning/lab/vagrant-config.rb [virtualbox|libvirt]
# libvirt needs the vagrant-libvirt plugin (Debian package vagrant-libvirt, which setup.sh
# installs); the exit status is 1 with the reason otherwise.
require "json"
require "tmpdir"
require "vagrant"

provider = (ARGV[0] || "virtualbox").to_sym

# Keep Vagrant's machine state out of the work tree. Creating the environment loads the installed
# plugins (vagrant-libvirt registers the libvirt provider).
data = Dir.mktmpdir("xdpex-vagrant-")
at_exit { FileUtils.remove_entry(data) }
env = Vagrant::Environment.new(cwd: Dir.pwd, local_data_path: data, data_dir: data)
unless Vagrant.plugin("2").manager.providers.key?(provider)
  warn "vagrant-config: provider '#{provider}' is not installed " \
       "(known: #{Vagrant.plugin("2").manager.providers.keys.join(", ")})"
  exit 1
end

# The same stand-in `vagrant validate -p` uses: a provider that is installed and usable, and
# creates nothing.
Vagrant.plugin("2").manager.providers.each do |_key, entry|
  entry[0].class_eval do
    def initialize(machine) end
    def machine_id_changed() end
    def self.installed?() true end
    def self.usable?(raise_error = false) true end
    def state
      Vagrant::MachineState.new(Vagrant::MachineState::NOT_CREATED_ID, :not_created, :not_created)
    end
  end
end

out = {}
env.machine_names.each do |name|
  machine = env.machine(name, provider)
  machine.action_raw(:config_validate, Vagrant::Action::Builtin::ConfigValidate, {})
  pc = machine.provider_config
  vm = machine.config.vm
  out[name] = {
    box: vm.box,
    hostname: vm.hostname,
    provider_config: pc.class.name,
    # Plain settings of the provider block (libvirt keeps them; VirtualBox turns cpus/memory
    # into `customize` commands).
    settings: %i[cpus memory cpu_mode nic_model_type].to_h { |k| [k, pc.respond_to?(k) ? pc.public_send(k) : nil] }
      .select { |_k, v| v.is_a?(Integer) || v.is_a?(String) || v.is_a?(Symbol) },
    customize: pc.respond_to?(:customizations) ? pc.customizations.map { |_when, cmd| cmd } : [],
    networks: vm.networks.map { |type, opts| { type: type.to_s }.merge(opts.reject { |k, _| k == :id }) },
    provisioners: vm.provisioners.map do |p|
      { name: p.name.to_s, type: p.type.to_s, path: p.config.path, env: p.config.env }
    end,
    synced_folders: vm.synced_folders.map do |_id, f|
      { guest: f[:guestpath], type: f[:type].to_s, disabled: f[:disabled] ? true : false }
    end,
  }
end
puts JSON.pretty_generate(out)
